"""The replicated store's runtime: durable node, client API over tejido RPC, cluster
tooling (see docs/store.md)."""
