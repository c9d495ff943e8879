"""Twin-GAN-style translation with one shared generator (:class:`~facegan.nets.twingan.TwinGenerator`).

Both domains go through the same encoder/decoder weights; per-domain normalization affine
parameters are the switch. Losses: per-domain reconstruction (encode and decode in the same domain,
L1, ``lambda_rec``), adversarial on translations (a PatchGAN with one output map per domain, LSGAN,
``lambda_adv``) and cycle consistency (``lambda_cyc``). Both domains share each batch, with a
per-sample domain index.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ...nets.translator import DomainPatchDiscriminator
from ..losses import GANLoss
from ..pool import ImagePool
from .base import Method, register_method


@register_method
class TwinGAN(Method):
    name = "twingan"
    data_kind = "unpaired"
    defaults = {
        "model": {"ngf": 32, "n_down": 4, "n_res": 2, "n_skips": 2, "ndf": 32, "n_layers_D": 3},
        "loss": {"gan": "lsgan", "lambda_adv": 1.0, "lambda_rec": 10.0, "lambda_cyc": 10.0},
        "train": {"pool_size": 50},
    }

    def build(self):
        m = self.cfg.model
        self.add_generator("G", "TwinGenerator", dict(ngf=int(m.ngf), n_down=int(m.n_down), n_res=int(m.n_res),
                                                      n_skips=int(m.n_skips), n_domains=2))
        self.add_net("D", DomainPatchDiscriminator(2, int(m.ndf), int(m.n_layers_D)))
        self.gan = GANLoss(self.cfg.loss.gan)
        self.pool = ImagePool(int(self.cfg.train.pool_size))

    def generator_info(self):
        return {"direction": "A->B", "call": {"target": 1}, "embed": "embed(x, domain)"}

    def train_step(self, batch):
        G, D = self.nets["G"], self.nets["D"]
        L = self.cfg.loss
        n = batch["A"].shape[0]
        x = torch.cat([batch["A"], batch["B"]])
        src = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(len(batch["B"]), dtype=torch.long)]).to(x.device)
        tgt = 1 - src
        self.requires_grad(D, False)
        with self.autocast():
            rec = G.translate(x, src, src)
            fake = G.translate(x, src, tgt)
            cyc = G.translate(fake, tgt, src)
            loss_rec = F.l1_loss(rec, x)
            loss_cyc = F.l1_loss(cyc, x)
            adv = self.gan(D(fake, tgt), True, for_discriminator=False)
            loss_G = L.lambda_adv * adv + L.lambda_rec * loss_rec + L.lambda_cyc * loss_cyc
        self.step(loss_G, "G")
        self.requires_grad(D, True)
        with self.autocast():
            # pool fakes together with their domain (stored as a 4th channel)
            pooled = self.pool.query(torch.cat([fake.detach(), tgt.view(-1, 1, 1, 1).float().expand(-1, 1, *x.shape[2:])], 1))
            pf, pd = pooled[:, :3], pooled[:, 3, 0, 0].round().long()
            loss_D = 0.5 * (self.gan(D(x, src), True) + self.gan(D(pf, pd), False))
        self.step(loss_D, "D")
        return {"G": loss_G.item(), "adv": adv.item(), "rec": loss_rec.item(), "cyc": loss_cyc.item(),
                "D": loss_D.item()}

    @torch.no_grad()
    def sample_rows(self, batch, nets):
        G = nets["G"]
        a, b = batch["A"], batch["B"]
        ab = G.translate(a, 0, 1)
        ba = G.translate(b, 1, 0)
        return [("A", a), ("A->B", ab), ("A->B->A", G.translate(ab, 1, 0)),
                ("B", b), ("B->A", ba), ("B->A->B", G.translate(ba, 0, 1))]

    def extra_state(self):
        t = self.pool.state_tensor()
        return {} if t is None else {"pool": t}

    def load_extra_state(self, state):
        self.pool.load_state_tensor(state.get("pool"), self.device)


@torch.no_grad()
def nearest_neighbours(G, queries: torch.Tensor, q_domain: int, gallery: torch.Tensor, g_domain: int,
                       k: int = 1, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query image, the ``k`` gallery images closest in the shared embedding (cosine).
    Returns (indices (Q, k), similarities (Q, k))."""
    def emb(x, d):
        return torch.cat([G.embed(x[i:i + batch], d) for i in range(0, len(x), batch)])

    sim = emb(queries, q_domain) @ emb(gallery, g_domain).T
    s, i = sim.topk(min(k, sim.shape[1]), dim=1)
    return i, s
