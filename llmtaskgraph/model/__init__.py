"""The model: what a user declares (tasks, the graph, the registry) and the context a running function sees."""
