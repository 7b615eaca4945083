"""imgpress's performance benchmark (dev tooling, never deployed): `make bench` or `python -m bench`."""
