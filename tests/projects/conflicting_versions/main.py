import sys

if __name__ == "__main__":
    print(f"python {sys.version_info.major}.{sys.version_info.minor}")
