"""Risk register, change records, reviews and business continuity (C23, C26)."""

from governance.risk.models.changes import Change, RiskAssessment
from governance.risk.models.continuity import ContinuityExercise, ContinuityPlan, ContinuityPlanVersion
from governance.risk.models.register import Category, Control, Risk, RiskAcceptance, RiskMatrix
from governance.risk.models.reviews import OverallRiskReview, ReviewReminder, RiskReview

__all__ = [
    "Category",
    "Change",
    "ContinuityExercise",
    "ContinuityPlan",
    "ContinuityPlanVersion",
    "Control",
    "OverallRiskReview",
    "ReviewReminder",
    "Risk",
    "RiskAcceptance",
    "RiskAssessment",
    "RiskMatrix",
    "RiskReview",
]
