"""The SQLite catalog: migrations, the Catalog class, queries for the CLI."""
