//! The fleet launcher: runs the workers in one process; demo mode on the local backend.
