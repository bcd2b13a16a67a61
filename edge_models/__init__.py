"""edge_models package."""
