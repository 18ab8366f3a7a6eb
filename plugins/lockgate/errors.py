"""The one exception family Lockgate raises for problems a user can fix.

Every message names what is wrong (file, source, table, field, rule) and never
contains a credential.
"""

from __future__ import annotations


class LockgateError(Exception):
    """Base class of every error Lockgate reports on purpose."""


class ConfigError(LockgateError):
    """A source YAML file, a setting or a connection is wrong."""


class SourceError(LockgateError):
    """The source database is unreachable, refuses the credentials or lacks a table."""


class SchemaDriftError(LockgateError):
    """The source schema changed in a way the warehouse cannot follow on its own."""


class LakeError(LockgateError):
    """A lake folder or manifest is missing, incomplete or does not match its checksum."""


class TypeMappingError(ConfigError):
    """A source column's type (or a value in it) has no exact warehouse representation.

    The message names the source, table, column and type; retrying cannot help."""


#: Errors no retry can heal: the task fails at once instead of retrying
#: (see :func:`lockgate.dag_factory.fail_fast`).
UNRECOVERABLE: tuple[type[LockgateError], ...] = (ConfigError, SchemaDriftError)  # TypeMappingError is a ConfigError
