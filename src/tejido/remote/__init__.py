"""Remote objects, RMI style: exported objects, proxies, a naming registry, lease-based GC."""
