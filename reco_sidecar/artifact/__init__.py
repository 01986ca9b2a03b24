"""The on-disk model artifact: format, writing, finding versions and loading."""
