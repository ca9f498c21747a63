"""The README's three-line load-and-train example works on a saved distilled set."""

import datasets
import torch

from latent_distill import DistilledDataset


def test_three_line_dataloader_over_a_saved_set(tmp_path):
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    DistilledDataset(method="pixel-dm", class_names=["a", "b"], labels=torch.tensor([0, 0, 0, 1, 1, 1]),
                     images=images, record={"ipc": 3, "budget": "count"}).save_pretrained(tmp_path / "set")

    ds = datasets.load_dataset(str(tmp_path / "set"), "images", split="train").with_format("torch")
    loader = torch.utils.data.DataLoader(ds, batch_size=256, shuffle=False)
    batch = next(iter(loader))

    assert batch["image"].dtype == torch.uint8 and torch.equal(batch["image"], images)
    assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1]
