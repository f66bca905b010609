"""The engine: the op contract, layers and the network written against it, optimisers,
the backend registry (pluggy), placement and its measurement. Knows nothing of music."""
