"""What the test jobs write: a note per job, through Django's ORM."""

from django.db import models


class Order(models.Model):
    """An order, created in the same transaction as its job is enqueued."""

    email = models.CharField(max_length=200)


class Note(models.Model):
    """A line a job writes, read back by the tests."""

    key = models.CharField(max_length=100)
    value = models.TextField()
