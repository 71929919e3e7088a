"""RPC examples: services declared once as typed interfaces, served natively or over gRPC."""
