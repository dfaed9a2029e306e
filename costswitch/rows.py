"""Written-out statements for the few reads and inserts every admission makes.

On the request path (the caller's key, its budget chain, the ledger's rows, the decision) the ORM
takes longer to build a statement than the database takes to run it (README "Measured"), so those
statements are written out once. `Columns` lists a model's columns for a SELECT and turns its share
of a result row back into an instance, with the database converters the ORM applies (SQLite's
datetimes and decimals, JSON) and `None` for a LEFT JOIN that found nothing; `insert` writes a new
instance as `save()` would (field defaults, `auto_now_add`; models without save signals only).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

from django.db import connection
from django.db.models import Model


@dataclass(frozen=True)
class Columns:
    model: type[Model]
    alias: str
    names: list[str] = field(init=False)
    pk_index: int = field(init=False)
    converters: list[tuple[int, Callable, object]] = field(init=False)  # (index, converter, column)

    def __post_init__(self) -> None:
        fields = self.model._meta.concrete_fields
        object.__setattr__(self, "names", [f.attname for f in fields])
        object.__setattr__(self, "pk_index", fields.index(self.model._meta.pk))
        object.__setattr__(
            self,
            "converters",
            [
                (index, converter, column)
                for index, f in enumerate(fields)
                for column in [f.get_col(self.alias)]
                for converter in connection.ops.get_db_converters(column) + f.get_db_converters(connection)
            ],
        )

    @property
    def sql(self) -> str:
        """The select list: every concrete column, in the order `load` reads them."""
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(f.column)}" for f in self.model._meta.concrete_fields)

    @property
    def table(self) -> str:
        return f"{connection.ops.quote_name(self.model._meta.db_table)} {self.alias}"

    def load(self, row: Sequence, start: int = 0) -> Model | None:
        """The instance in `row[start:]`; None when its primary key is NULL (an outer join's miss)."""
        values = list(row[start : start + len(self.names)])
        if values[self.pk_index] is None:
            return None
        for index, converter, column in self.converters:
            values[index] = converter(values[index], column, connection)
        return self.model.from_db(connection.alias, self.names, values)

    def __len__(self) -> int:
        return len(self.names)


def fetch_rows(sql: str, params: Sequence) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@cache
def _insert_statement(model: type[Model]) -> tuple[str, list]:
    quote = connection.ops.quote_name
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING {pk}", fields


def insert(instance: Model) -> None:
    """INSERT `instance` (new, with an automatic primary key) and set its primary key."""
    sql, fields = _insert_statement(type(instance))
    params = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    instance.pk = fetch_rows(sql, params)[0][0]
    instance._state.adding = False
    instance._state.db = connection.alias
