"""``domain_knowledge.json``: what a normal sample of each product looks like and what each defect is.

Laid out as MMAD's file is: dataset -> category -> {"good": ..., defect name: ...}, each text a
heading in angle brackets followed by a description.
"""

from __future__ import annotations

from mmeval.data.synthetic.catalogue import DEFECTS, PRODUCTS, Product


def product_knowledge(product: Product) -> dict[str, str]:
    out = {"good": f" <Normal Characteristics>\n Description: {product.normal_knowledge}"}
    for key in product.defects:
        kind = DEFECTS[key]
        out[key] = f" <{kind.title}>\n Description: {kind.knowledge.format(p=product.noun)}"
    return out


def domain_knowledge() -> dict[str, dict[str, dict[str, str]]]:
    out: dict[str, dict[str, dict[str, str]]] = {}
    for product in PRODUCTS:
        out.setdefault(product.dataset, {})[product.name] = product_knowledge(product)
    return out
