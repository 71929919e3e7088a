"""Remote-object examples: objects exported by reference, callbacks, leases."""
