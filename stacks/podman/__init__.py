"""The Podman stack: what a session materialises on a local podman."""
