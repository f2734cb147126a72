"""Reading what a build produced: test counts from JUnit reports or console output, and the
failure code of a failed `docker build`."""
