"""Integration tests: adapters against real local peers (HTTP receivers, an SMTP server), no cluster."""
