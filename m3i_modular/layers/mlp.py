import torch
from torch import nn


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the activation of OpenAI's CLIP towers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


# exact GELU; tanh-approximate GELU (GPT-2's gelu_new / TencentPretrain's gelu_fast); OpenAI CLIP's QuickGELU
ACTIVATIONS = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate="tanh"), "quick_gelu": QuickGELU}


class Mlp(nn.Module):
    def __init__(self, *, dim: int, hidden: int, out_dim: int = 0, drop: float = 0.0, act: str = "gelu"):
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.fc1 = nn.Linear(dim, hidden)
        self.act = ACTIVATIONS[act]()
        self.fc2 = nn.Linear(hidden, out_dim or dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))
