"""The model: the network, its training, evaluation, serving and hot reload."""
