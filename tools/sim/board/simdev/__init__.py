"""Device models for the simulated board: chips that answer like their datasheets say."""
