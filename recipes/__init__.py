"""Recipes are data: the schema, the loader, and the built-in recipes as TOML files."""
