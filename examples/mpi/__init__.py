"""MPI example programs: each runs unchanged on both tejido.mpi backends (docs/mpi.md)."""
