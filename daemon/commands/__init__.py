"""The built-in CLI commands, one module per command or group."""
