print("never built here")
