"""The review station: a local web page where a person decides what the model was unsure of."""
