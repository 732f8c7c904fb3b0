"""The ledger: claims, the results CSV, and the exactly-once commit that ties them together."""
