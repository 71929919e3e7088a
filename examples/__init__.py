"""Small runnable tejido programs; the tests run them and the docs quote them."""
