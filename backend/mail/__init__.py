"""Mail genhook sends itself: signup verification links and notices (``outbox.py``)."""
