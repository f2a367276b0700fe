"""Table definitions (SQLAlchemy Core), one module per part of the service, all on
one `metadata`. Migrations in storage/migrations follow these. Every table is
imported from here: `from personae.storage.tables import messages`."""

from personae.storage.tables.base import *  # noqa: F403
from personae.storage.tables.core import *  # noqa: F403
from personae.storage.tables.memory import *  # noqa: F403
from personae.storage.tables.moderation import *  # noqa: F403
from personae.storage.tables.operations import *  # noqa: F403
from personae.storage.tables.rooms import *  # noqa: F403
