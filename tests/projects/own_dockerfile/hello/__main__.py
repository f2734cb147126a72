from hello import message

print(message())
