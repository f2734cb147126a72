"""Reading a Python project without running it: how to install it, which Python, how its tests run,
what its native code needs and how the image starts."""
