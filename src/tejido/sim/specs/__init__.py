"""Protocol families registered with the simulator, one module each (``SPECS`` lists them)."""
