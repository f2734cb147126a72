# A Python 2 era release script, kept in the repository but never imported.
print "releasing"
