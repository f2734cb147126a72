import six

print("groupie", six.PY3)
