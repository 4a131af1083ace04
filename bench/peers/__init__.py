"""Peer servers for the side-by-side comparison; each runs as a standalone script."""
