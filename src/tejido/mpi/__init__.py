"""Message passing with the MPI model over tejido's transport or a real MPI
(see docs/mpi.md)."""
