"""agent family (registered models are added by the family implementation)."""
