"""Audits: the plugins that say what is audited (:mod:`fadejax.audits.image`,
:mod:`~fadejax.audits.text`, :mod:`~fadejax.audits.prompt`, :mod:`~fadejax.audits.conditions`).

Layer: above the stages they plug into. An audit may import ``fadejax.engine``,
``fadejax.analysis``, ``fadejax.stages`` and ``fadejax.core``, and loads its model through
``bridges`` at run time; audits never import each other, except ``conditions``, which
composes the ``image`` and ``prompt`` audits. The engine and the stages reach an audit only
by name, through the registry (:mod:`fadejax.engine.registry`), re-exported here as the
public plugin interface: ``fadejax.audits.Audit``, ``fadejax.audits.register``,
``fadejax.audits.get``.
"""

from fadejax.engine.audit import Audit, AuditError, RestructureRequest, section_paths
from fadejax.engine.registry import BUILTIN, DEFAULT, ENTRY_POINT_GROUP, get, loaded, names, register

__all__ = ["Audit", "AuditError", "RestructureRequest", "section_paths", "register", "get", "names", "BUILTIN", "DEFAULT", "ENTRY_POINT_GROUP", "loaded"]
