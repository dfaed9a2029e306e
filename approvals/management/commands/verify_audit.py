from django.core.management.base import BaseCommand, CommandError

from approvals.audit import verify_chain


class Command(BaseCommand):
    help = (
        "Walk the audit log in sequence order and check every link of its hash chain. Prints "
        '"OK: N entries" and the head hash, or names the first broken entry and exits non-zero.'
    )

    def handle(self, *args, **options) -> None:
        report = verify_chain()
        if not report.ok:
            raise CommandError(
                f"BROKEN at audit entry id={report.broken_id} sequence={report.broken_sequence}: "
                f"{report.problem} ({report.entries} entries before it verified)",
                returncode=2,
            )
        head = f", head #{report.head_sequence} {report.head_hash}" if report.entries else ""
        self.stdout.write(f"OK: {report.entries} entries{head}")
