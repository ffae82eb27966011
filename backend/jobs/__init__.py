"""A job's life, one module a step: create, submit, poll, finish, deliver, sweep."""
