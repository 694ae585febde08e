"""``manage.py`` commands of the Conveyor app."""
