"""The offline agent install served by the server: /agent/install.sh and the bundles (core.agentbundle)."""
