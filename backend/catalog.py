"""The model catalog: which models genhook offers, who renders them and what they cost.

Each model lists its ``routes``: a provider (an adapter in ``backend/providers``) and that
provider's own model name. A job is sent along the first route whose provider is enabled
(its credentials are set); failing over along the rest is the routing step's business.
``docs/providers.md`` shows the same table for people.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

#: Durations a client may ask for, as accepted on the wire.
DURATIONS = {"5s": 5, "10s": 10}
ASPECT_RATIOS = ("16:9", "9:16", "1:1")

#: What a model can take besides its prompt.
IMAGE = "image"
END_IMAGE = "end_image"


@dataclass(frozen=True)
class Route:
    """One way to render a model: a provider and the provider's name for the model."""

    provider: str
    model: str


@dataclass(frozen=True)
class CatalogModel:
    """A video model and its price in credits per duration in seconds."""

    id: str
    name: str
    credits_by_duration: dict[int, int]
    #: Typical wall-clock render time, used for ETAs before the provider gives one.
    typical_render_seconds: int
    routes: tuple[Route, ...]
    description: str = ""
    #: "text" always; IMAGE (first frame) and END_IMAGE (last frame) where the model takes them.
    inputs: tuple[str, ...] = ("text",)
    aspect_ratios: tuple[str, ...] = field(default=ASPECT_RATIOS)

    def price(self, duration_seconds: int) -> int:
        return self.credits_by_duration[duration_seconds]

    def takes(self, input_name: str) -> bool:
        return input_name in self.inputs

    def route_for(self, enabled: Collection[str]) -> Route | None:
        """The first route whose provider is enabled, if any."""
        return next((r for r in self.routes if r.provider in enabled), None)


MODELS: dict[str, CatalogModel] = {
    m.id: m
    for m in (
        CatalogModel(
            id="kling-v3",
            name="Kling v3",
            credits_by_duration={5: 3, 10: 6},
            typical_render_seconds=90,
            description="General-purpose text- and image-to-video, strong motion.",
            inputs=("text", IMAGE, END_IMAGE),
            routes=(Route("kling", "kling-v3"),),
        ),
        CatalogModel(
            id="seedance-1-pro",
            name="Seedance 1 Pro",
            credits_by_duration={5: 2, 10: 4},
            typical_render_seconds=60,
            description="Fast and inexpensive; good for product shots.",
            inputs=("text", IMAGE, END_IMAGE),
            routes=(
                Route("byteplus", "seedance-1-0-pro-250528"),
                Route("replicate", "bytedance/seedance-1-pro"),
            ),
        ),
        CatalogModel(
            id="kling-o3-pro",
            name="Kling O3 Pro",
            credits_by_duration={5: 5, 10: 10},
            typical_render_seconds=180,
            description="Highest fidelity, slowest.",
            inputs=("text", IMAGE, END_IMAGE),
            routes=(Route("fal", "fal-ai/kling-video/o3/pro/text-to-video"),),
        ),
        CatalogModel(
            id="wan-2.5",
            name="Wan 2.5",
            credits_by_duration={5: 2, 10: 4},
            typical_render_seconds=120,
            description="Open-weights model on Replicate; good value for listing walkthroughs.",
            inputs=("text", IMAGE),
            routes=(Route("replicate", "wan-video/wan-2.5-t2v"),),
        ),
        CatalogModel(
            id="runway-gen4.5",
            name="Runway Gen-4.5",
            credits_by_duration={5: 5, 10: 10},
            typical_render_seconds=90,
            description="Cinematic camera moves; text or a first frame.",
            inputs=("text", IMAGE),
            # gen4.5 takes no last frame, and no 1:1 without an image (runwayml/sdk-python).
            aspect_ratios=("16:9", "9:16"),
            routes=(Route("runway", "gen4.5"),),
        ),
        CatalogModel(
            id="luma-ray-2",
            name="Luma Ray 2",
            credits_by_duration={5: 4, 10: 8},
            typical_render_seconds=60,
            description="Smooth, natural motion; keyframes for first and last frame; 10 s "
            "renders as 9 s.",
            inputs=("text", IMAGE, END_IMAGE),
            routes=(Route("luma", "ray-2"),),
        ),
        CatalogModel(
            id="veo-3.1-fast",
            name="Veo 3.1 Fast",
            credits_by_duration={5: 6, 10: 8},
            typical_render_seconds=75,
            description="Google Veo with sound; 5 s renders as 6 s and 10 s as 8 s.",
            inputs=("text", IMAGE, END_IMAGE),
            aspect_ratios=("16:9", "9:16"),
            routes=(Route("gemini", "veo-3.1-fast-generate-preview"),),
        ),
        CatalogModel(
            id="hailuo-02",
            name="MiniMax Hailuo 02",
            credits_by_duration={5: 3, 10: 5},
            typical_render_seconds=120,
            description="Strong physics; 5 s renders as 6 s; 16:9, or the first frame's shape.",
            inputs=("text", IMAGE, END_IMAGE),
            # MiniMax has no ratio field: text renders 16:9, and a first frame sets the shape.
            aspect_ratios=("16:9",),
            routes=(Route("minimax", "MiniMax-Hailuo-02"),),
        ),
    )
}


def get_model(model_id: str) -> CatalogModel | None:
    return MODELS.get(model_id)
