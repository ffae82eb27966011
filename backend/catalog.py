"""The model catalog: which models genhook offers, who renders them and what they cost."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Durations a client may ask for, as accepted on the wire.
DURATIONS = {"5s": 5, "10s": 10}
ASPECT_RATIOS = ("16:9", "9:16", "1:1")


@dataclass(frozen=True)
class CatalogModel:
    """A video model and its price in credits per duration in seconds."""

    id: str
    name: str
    provider: str
    credits_by_duration: dict[int, int]
    #: Typical wall-clock render time, used for ETAs before the provider gives one.
    typical_render_seconds: int
    description: str = ""
    aspect_ratios: tuple[str, ...] = field(default=ASPECT_RATIOS)

    def price(self, duration_seconds: int) -> int:
        return self.credits_by_duration[duration_seconds]


#: Every model is served by the simulator until real provider adapters exist.
MODELS: dict[str, CatalogModel] = {
    m.id: m
    for m in (
        CatalogModel(
            id="kling-v3",
            name="Kling v3",
            provider="simulator",
            credits_by_duration={5: 3, 10: 6},
            typical_render_seconds=90,
            description="General-purpose text-to-video, strong motion.",
        ),
        CatalogModel(
            id="seedance-1-pro",
            name="Seedance 1 Pro",
            provider="simulator",
            credits_by_duration={5: 2, 10: 4},
            typical_render_seconds=60,
            description="Fast and inexpensive; good for product shots.",
        ),
        CatalogModel(
            id="kling-o3-pro",
            name="Kling O3 Pro",
            provider="simulator",
            credits_by_duration={5: 5, 10: 10},
            typical_render_seconds=180,
            description="Highest fidelity, slowest.",
        ),
    )
}


def get_model(model_id: str) -> CatalogModel | None:
    return MODELS.get(model_id)
