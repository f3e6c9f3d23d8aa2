from ketnap.cli import app

app()
