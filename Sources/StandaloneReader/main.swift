print("standalone reader: not yet")
