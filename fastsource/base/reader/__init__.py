"""The reader base: the source reader, its split fetchers (threads around a split reader) and the
bounded hand-over queue between them."""
