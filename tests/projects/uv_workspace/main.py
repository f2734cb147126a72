from greeting import greet
from shout import shout

if __name__ == "__main__":
    print(shout(greet("world")))
