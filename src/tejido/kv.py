"""The store's client: `tejido.kv.Client` (asyncio) and its blocking twin."""
