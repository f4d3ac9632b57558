"""One error hierarchy for the library; the CLI turns each into `Error: …` and an exit code."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trialfinder.gazetteer import Place
    from trialfinder.nearest import RankedSite


class TrialFinderError(Exception):
    """Base of every error a user can act on. The message is shown as is, on one line."""

    exit_code = 1


class BadInput(TrialFinderError):
    """A value the user gave cannot be used (an option value, a malformed id, a bad file)."""

    exit_code = 2


class InvalidTrialId(BadInput):
    def __init__(self, value: str, message: str | None = None) -> None:
        """``message`` replaces the default wording (the registry's own 400 answer, say)."""
        from trialfinder.i18n import _

        super().__init__(
            message
            or _("'{value}' is not a ClinicalTrials.gov identifier (expected NCT and 8 digits, "
                 "e.g. NCT02260505)").format(value=value)
        )
        self.value = value


class UnknownPlace(TrialFinderError):
    """A place name or postal code that the gazetteer cannot resolve."""

    def __init__(self, message: str, suggestions: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.suggestions = suggestions


class OutOfReach(TrialFinderError):
    """The place resolved, but no site of the trial is within the distance asked for: the
    place, the nearest site and the distance asked, for an interface to word it its way."""

    def __init__(self, message: str, place: Place, nearest: RankedSite, max_km: float) -> None:
        super().__init__(message)
        self.place, self.nearest, self.max_km = place, nearest, max_km


class TrialNotFound(TrialFinderError):
    """No record of this trial in the store nor in the bundled data, or 404 from the registry;
    ``nct_id``: the trial (None when no particular trial was asked for)."""

    def __init__(self, message: str, nct_id: str | None = None) -> None:
        super().__init__(message)
        self.nct_id = nct_id


class ListingError(TrialFinderError):
    """A listing page that could not be fetched or read into a trial."""


class ListingFetchError(ListingError):
    """A listing page's URL could not be fetched (network, HTTP error, deadline)."""

    exit_code = 1


class UnusableListing(ListingError, BadInput):
    """A listing page that cannot be used: unreadable, too large, binary, not a trial
    listing, or a URL that is not http(s)."""

    exit_code = 2


class RegistryError(TrialFinderError):
    """The registry could not be reached or answered something unusable."""


class StoreError(TrialFinderError):
    """The local store cannot be opened, is corrupt, or is locked by another process."""


class StoreBusy(StoreError):
    """Another sync holds the store's lock."""

    exit_code = 75  # EX_TEMPFAIL: a cron job may simply try again later


class GeocodingError(TrialFinderError):
    """An online geocoder failed; callers usually fall back to the next step."""
