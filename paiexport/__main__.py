from paiexport.cli import app

app()
