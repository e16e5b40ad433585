"""`python manage.py make_corpus`: generate the sample corpus (if missing) and list it."""

from django.core.management.base import BaseCommand

from apps.ocr import corpus


class Command(BaseCommand):
    help = "Generate the sample corpus under VAR_DIR/corpus (cheap when present) and print it."

    def handle(self, *args, **options) -> None:
        directory = corpus.ensure_corpus()
        for name in corpus.CORPUS_NAMES:
            path = directory / name
            pages = len(corpus.truth_pages(name))
            self.stdout.write(f"{path}  ({path.stat().st_size} bytes, {pages} page(s))")
            self.stdout.write(f"{path.with_suffix('.txt')}  (ground truth)")
