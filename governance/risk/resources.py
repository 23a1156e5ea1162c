"""Import and export of the risk register and controls (CSV, XLSX) with django-import-export.

Rows are matched on `code`. Owners are usernames, teams are group names, a risk's controls
are control codes separated by "|"; a name that resolves to nothing is an error on that
row, never a silent blank. Levels are exported for reading and recomputed on import.
Every row is saved through the services, so imports are validated and audited like any
other change. Cells that a spreadsheet would run as formulas are exported with a leading
quote, which the import removes again (lossless round trip).
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from import_export import fields, resources, widgets

from governance.core.csvsafe import FORMULA_PREFIXES, csv_cell
from governance.risk import services
from governance.risk.models import Control, Risk


class SafeTextWidget(widgets.CharWidget):
    """Text that cannot turn into a spreadsheet formula, and comes back unchanged."""

    def render(self, value, obj=None, **kwargs):
        return csv_cell(value)

    def clean(self, value, row=None, **kwargs):
        text = "" if value is None else str(value)
        if text.startswith("'") and text[1:].startswith(FORMULA_PREFIXES):
            text = text[1:]
        return text


class StrictForeignKeyWidget(widgets.ForeignKeyWidget):
    """A blank cell is None; a name that matches nothing is a row error naming it."""

    def clean(self, value, row=None, **kwargs):
        value = "" if value is None else str(value).strip()
        if not value:
            return None
        found = self.get_queryset(value, row).filter(**{self.field: value}).first()
        if found is None:
            raise ValueError(f"no {self.model._meta.verbose_name} named {value!r}")
        return found


class AllOrNothingMixin:
    """An import with any bad row changes nothing (the admin already works this way)."""

    def import_data(self, dataset, **kwargs):
        kwargs.setdefault("rollback_on_validation_errors", True)
        return super().import_data(dataset, **kwargs)


def _text(name: str) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=SafeTextWidget())


def _int(name: str) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=widgets.IntegerWidget())


def _date(name: str, readonly: bool = False) -> fields.Field:
    return fields.Field(attribute=name, column_name=name, widget=widgets.DateWidget("%Y-%m-%d"), readonly=readonly)


class RiskResource(AllOrNothingMixin, resources.ModelResource):
    code = _text("code")
    title = _text("title")
    description = _text("description")
    category = _text("category")
    owner = fields.Field(
        attribute="owner", column_name="owner", widget=StrictForeignKeyWidget(get_user_model(), "username")
    )
    owner_team = fields.Field(
        attribute="owner_team", column_name="owner_team", widget=StrictForeignKeyWidget(Group, "name")
    )
    assets = _text("assets")
    threat = _text("threat")
    vulnerability = _text("vulnerability")
    inherent_likelihood = _int("inherent_likelihood")
    inherent_impact = _int("inherent_impact")
    inherent_level = fields.Field(attribute="inherent_level", column_name="inherent_level", readonly=True)
    controls = fields.Field(
        attribute="controls", column_name="controls", widget=widgets.ManyToManyWidget(Control, "|", "code")
    )
    residual_likelihood = _int("residual_likelihood")
    residual_impact = _int("residual_impact")
    residual_level = fields.Field(attribute="residual_level", column_name="residual_level", readonly=True)
    treatment = _text("treatment")
    status = _text("status")
    last_reviewed_on = _date("last_reviewed_on")
    next_review_on = _date("next_review_on")
    matrix = fields.Field(attribute="matrix", column_name="matrix", readonly=True)

    class Meta:
        model = Risk
        import_id_fields = ("code",)
        fields = (
            "code",
            "title",
            "description",
            "category",
            "owner",
            "owner_team",
            "assets",
            "threat",
            "vulnerability",
            "inherent_likelihood",
            "inherent_impact",
            "inherent_level",
            "controls",
            "residual_likelihood",
            "residual_impact",
            "residual_level",
            "treatment",
            "status",
            "last_reviewed_on",
            "next_review_on",
            "matrix",
        )
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def get_queryset(self):
        return Risk.objects.select_related("owner", "owner_team", "matrix").prefetch_related("controls")

    def import_instance(self, instance, row, **kwargs):
        errors = {}
        try:
            super().import_instance(instance, row, **kwargs)
        except ValidationError as e:
            errors = e.update_error_dict(errors)
        instance._import_controls = None
        if "controls" in row:
            codes = [c.strip() for c in str(row["controls"] or "").split("|") if c.strip()]
            found = {c.code: c for c in Control.objects.filter(code__in=codes)}
            missing = [c for c in codes if c not in found]
            if missing:
                errors["controls"] = [ValidationError(f"unknown control codes: {', '.join(missing)}")]
            instance._import_controls = [found[c] for c in codes if c in found]
        if errors:
            raise ValidationError(errors)

    def skip_row(self, instance, original, row, import_validation_errors=None):
        if import_validation_errors or original is None or original.pk is None:
            return False
        if instance._import_controls is not None and sorted(c.code for c in instance._import_controls) != sorted(
            original.controls.values_list("code", flat=True)
        ):
            return False
        return super().skip_row(instance, original, row, import_validation_errors)

    def save_instance(self, instance, is_create, row, **kwargs):
        user = kwargs.get("user")
        values = {f: getattr(instance, f) for f in (*services.RISK_FIELDS, *services.REVIEW_DATE_FIELDS)}
        if "next_review_on" not in row:
            values.pop("next_review_on")
        if is_create:
            saved = services.risk_create(acting_user=user, controls=instance._import_controls or (), **values)
        else:
            saved = services.risk_update(risk=instance, acting_user=user, controls=instance._import_controls, **values)
        instance.pk = saved.pk
        for name in ("matrix_id", "inherent_level", "residual_level", "next_review_on", "created_at", "updated_at"):
            setattr(instance, name, getattr(saved, name))

    def save_m2m(self, instance, row, **kwargs):
        pass  # controls are saved (and audited) by the service


class ControlResource(AllOrNothingMixin, resources.ModelResource):
    code = _text("code")
    name = _text("name")
    description = _text("description")
    owner = fields.Field(
        attribute="owner", column_name="owner", widget=StrictForeignKeyWidget(get_user_model(), "username")
    )
    status = _text("status")
    evidence = _text("evidence")
    last_tested_on = _date("last_tested_on")

    class Meta:
        model = Control
        import_id_fields = ("code",)
        fields = ("code", "name", "description", "owner", "status", "evidence", "last_tested_on")
        export_order = fields
        skip_unchanged = True
        report_skipped = True
        use_transactions = True

    def get_queryset(self):
        return Control.objects.select_related("owner")

    def save_instance(self, instance, is_create, row, **kwargs):
        values = {f: getattr(instance, f) for f in services.CONTROL_FIELDS}
        saved = services.control_save(acting_user=kwargs.get("user"), control=None if is_create else instance, **values)
        instance.pk = saved.pk
